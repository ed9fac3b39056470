# One image for every Sluice process (web, worker); the command picks the process.
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /srv/sluice
COPY requirements.lock pyproject.toml README.md ./
RUN pip install --no-cache-dir -r requirements.lock
COPY app ./app
COPY workers ./workers
COPY integrations ./integrations
RUN pip install --no-cache-dir --no-deps . && useradd --system --uid 10001 sluice
USER 10001
EXPOSE 8000
# gevent workers, header deadline, JSON errors: app/web/serving.py (slow clients cannot starve it).
CMD ["gunicorn", "-c", "app/web/serving.py", "--bind", "0.0.0.0:8000", "app:create_app()"]

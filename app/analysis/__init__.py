"""Looking back: replaying a release's recorded history against another policy, backtesting a
policy over past releases, and the jobs that run them in a worker."""

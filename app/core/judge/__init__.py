"""The judge: a step's counts turned into comparisons with stable, and the statistics behind them."""

"""What a running query tells the outside: lifecycle log records (`log.py`) and Prometheus metrics (`metrics.py`)."""

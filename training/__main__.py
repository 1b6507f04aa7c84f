import os

# XGBoost's OpenMP threads spin while they wait for work by default; on a shared machine (a
# small ECS task, CI, the embedded stack) that burns the CPU other processes need and made
# `train --quick` twenty times slower under load. Must be set before libgomp loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from training.cli import main

if __name__ == "__main__":
    main()

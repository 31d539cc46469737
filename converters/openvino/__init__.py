"""OpenVINO: IR export, runner and artifact entry for Intel CPUs, GPUs and NPUs (imported on first use)."""

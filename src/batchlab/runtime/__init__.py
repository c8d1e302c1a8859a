"""Where a run executes: the device, the thread rule, and the environment recorded with it."""

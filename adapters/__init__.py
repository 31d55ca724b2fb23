"""Platform adapters: translate platform events to core invocations and results back."""

"""Running the real program offline: the stack file fed to Pulumi's mock runtime, a recording mock, the plan."""

"""Local jobs on this machine: processes, supervisors, queues and their termination."""

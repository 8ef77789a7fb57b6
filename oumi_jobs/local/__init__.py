"""Local processes on this machine: supervisors, the cloud launching process, queues and their termination."""

"""The built-in local backend: runs tasks in containers on this machine."""

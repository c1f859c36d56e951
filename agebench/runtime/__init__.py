"""The process a command runs in: `threads` (how many torch threads a job takes on a shared node),
`progress` (the plain progress lines on stdout and in `train.log`, and the live bar on a terminal) and
`process` (Lightning's quiet setup, the cache directory, this process's rank)."""

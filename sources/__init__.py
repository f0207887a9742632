"""SCM API clients, the read side.

They fetch diffs and file contents from a source (the GitHub REST API, a local
git repository), so they do I/O and are not processors; what they fetch is
handed to the pure processors in ``processors/``.
"""

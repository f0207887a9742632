"""Local HTTP servers that answer like each SCM's review/comment API, for publisher tests."""

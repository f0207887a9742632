"""Publishers: one per SCM, each posting findings as comments through that SCM's API."""

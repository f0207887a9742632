"""Real, small stand-ins for external services (an LLM API on 127.0.0.1), for tests."""

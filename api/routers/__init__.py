"""One router per domain; ``api.main`` includes them."""

"""``make bench``: figures measured against the offline engine and the platform fakes."""

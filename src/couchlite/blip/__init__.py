"""blip."""

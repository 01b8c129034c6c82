"""Template sources: local (averaged from the recording), synthetic, the public template database;
``targets`` holds what the database and synthetic sources share."""

"""File engine shared by the apps and the site daemon. Plain Python: never imports Django."""

"""Writing stored results in other formats (JUnit XML now)."""

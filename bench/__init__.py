"""`make bench`: side-by-side measurements against the Klaviyo sandbox (results in bench/RESULTS.md)."""

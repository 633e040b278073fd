"""Reports: the text and HTML pages, their charts, and the table/CSV/JSON output of query."""

"""Talking to the SWR API: the client, its transport, bounds on what a server can make us spend, paging."""

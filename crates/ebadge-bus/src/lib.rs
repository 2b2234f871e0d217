//! eBADGE bus: the client library (connect, send, receive, reliability layer) and the bus conventions; it arrives with the client-library issue.

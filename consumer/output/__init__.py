"""Where a record is published: output encoding, PutRecords with its retry policy."""

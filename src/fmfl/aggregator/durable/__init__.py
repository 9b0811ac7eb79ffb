"""What survives a crash: the write-ahead log, the round journal, the global model store, the run identity."""

package memory

// SetCorpusCacheBytes bounds s's cache of analysed memories (corpus.go),
// emptying it, so a test can fill it with a few users.
func SetCorpusCacheBytes(s *Service, n int64) { s.corpora = newCorpusCache(n) }

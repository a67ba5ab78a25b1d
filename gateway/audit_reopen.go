package gateway

// ReopenAudit reopens the audit log at its configured path, creating it
// when missing: the gateway calls it on SIGHUP so that logrotate's
// "rename, then signal" sends new records to the new file and lets go of
// the old one. An auditor that has no file (a test's) has nothing to do.
func (s *Server) ReopenAudit() error {
	r, ok := s.audit.(interface{ Reopen() error })
	if !ok {
		return nil
	}
	return r.Reopen()
}

// Package gateway is secretgate's HTTP front door: it authenticates callers,
// decides what they may do (package policy), audits every decision, and
// hands storage to backend plugins through the plain sdk.Backend interface.
//
// # The request path of a secret route
//
//	recovery, nosniff, requestIDs, observe, limitBody   server.go (every route)
//	noStore, withAction(action)                          server.go
//	authenticate        auth.go    bearer token -> subject, or 401
//	authorizeProject    auth.go    any binding on the project? else 404
//	handler             handlers.go, patch.go, copy.go
//	  decodeJSON        request.go, strictjson.go: strict body, 400 naming the field
//	  r.allowed(action) request.go: the action on this secret, else 403
//	  r.writable()      request.go: not while the project migrates, else 409
//	  r.writeBackend()  request.go: the backend, then the audit intent record
//	                    (not synced, and sent as a receipt with each write,
//	                    for a backend that keeps receipts: receipts_request.go)
//	  backend call      through Backends (host.go: one plugin process each)
//	  r.auditSuccess()  or r.fail(err): the audit outcome record, then the answer
//
// Every answer that is not a success goes through r.fail, so it is audited
// and carries the error envelope of errors.go; messages are built from names
// and rules, never from a request body, so no value can be echoed.
//
// # Files
//
//   - server.go: Server, its options, the engine and middleware, Serve and
//     Shutdown.
//   - auth.go, request.go, wire.go: per-request state, authentication, the
//     JSON shapes.
//   - handlers.go, patch.go, copy.go, projects.go, listing.go: the routes;
//     listing.go seals page tokens and fills pages with visible names.
//   - strictjson.go: what encoding/json would silently accept, refused.
//   - audit.go, audit_group.go, audit_reopen.go: the append-only audit log
//     and its group commit; receipts.go, receipts_request.go: audit receipts
//     (a write's records committed with it by the backend; recovered at a
//     plugin's start).
//   - limiter.go, metrics.go: bounds on what unauthenticated clients can
//     make the gateway write, and the Prometheus metrics.
//   - host.go, host_supervise.go: starting, supervising and stopping plugin
//     processes (the set of them; one process's life).
//   - migrate*.go: migrations between backends (API, run, copy, journal).
//   - config.go (its shape), config_load.go (reading and checking it),
//     config_auth.go, authz.go, routing.go: configuration (auth.jwt
//     issuers too), the policy adapter, and the project -> backend table.
//   - live.go, reload.go: the snapshot a reload replaces (policy, issuers,
//     config), and SIGHUP reloads (Host.Apply for the plugins).
//   - events.go, events_stream.go, watchpoll.go: change notifications (the
//     per-project log, hijacked streams, the poller of writes made behind
//     the gateway's back).
//   - resolve.go, rollback.go, versions_keys.go: POST /v1/resolve, rollback,
//     ?keys=true on versions.
//   - backendcalls.go, readcache*.go: every backend call counted, and the
//     optional read cache with stale-if-error.
//   - vaultapi*.go: Vault's KV v2 API (docs/vault-api.md).
//   - openapi.go: GET /v1/openapi.yaml.
//
// The contract (routes, shapes, codes, paging) is docs/api.md; the
// permission table is docs/permissions.md; the request path is drawn in
// docs/architecture.md.
package gateway

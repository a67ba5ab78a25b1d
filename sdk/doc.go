// Package sdk is the uniform secret model that plugin authors and API users
// import: its validation and limits, the typed errors, references
// (sg://project/secret/key), name-ordered paging, and the Backend interface
// that every storage plugin implements. It uses the standard library only;
// the go-plugin/gRPC transport (Serve for plugin mains, Launch for hosts) is
// package sdk/plugin, and the HTTP API's wire types are package sdk/api.
//
// The model is the same on every backend. A secret lives in one project, has
// a name and 1 to 100 key/value pairs, an integer version that starts at 1 and
// grows by one on every write, optional labels, and timestamps. Values are
// UTF-8 strings; the JSON encoding of the pairs (see EncodeData) is at most
// MaxPayloadBytes, the AWS and GCP limit.
//
// sdk imports nothing else of secretgate, so a plugin author's module depends
// on this package and sdk/plugin alone.
package sdk

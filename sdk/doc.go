// Package sdk is what plugin authors and API users import: the uniform secret
// model and its validation, the typed errors, the Backend interface that every
// storage plugin implements, Serve for plugin mains and Launch for hosts.
//
// The model is the same on every backend. A secret lives in one project, has
// a name and 1 to 100 key/value pairs, an integer version that starts at 1 and
// grows by one on every write, optional labels, and timestamps. Values are
// UTF-8 strings; the JSON encoding of the pairs (see EncodeData) is at most
// MaxPayloadBytes, the AWS and GCP limit.
//
// sdk imports nothing else of secretgate, so a plugin author's module depends
// on this package alone.
package sdk

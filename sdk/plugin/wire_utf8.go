package plugin

import (
	"unicode/utf8"

	"github.com/secretgate/secretgate/sdk"
)

// proto3 string fields must hold valid UTF-8: gRPC refuses to marshal
// anything else, with an untyped error, before the call leaves the host. So
// the host adapter checks every string it is about to send and answers the
// typed ErrInvalid, naming the field, as the plugin itself would.

func wireRef(ref sdk.Ref) error {
	if !utf8.ValidString(ref.Project) {
		return sdk.Invalid("project", "must be valid UTF-8")
	}
	if !utf8.ValidString(ref.Name) {
		return sdk.Invalid("name", "must be valid UTF-8")
	}
	return nil
}

func wireList(req sdk.ListRequest) error {
	switch {
	case !utf8.ValidString(req.Project):
		return sdk.Invalid("project", "must be valid UTF-8")
	case !utf8.ValidString(req.Prefix):
		return sdk.Invalid("prefix", "must be valid UTF-8")
	case !utf8.ValidString(req.PageToken):
		return sdk.Invalid("page_token", "is not a token this backend issued")
	}
	return nil
}

func wireWrite(req sdk.WriteRequest) error {
	if err := wireRef(sdk.Ref{Project: req.Project, Name: req.Name}); err != nil {
		return err
	}
	if err := wireMap("data", req.Data); err != nil {
		return err
	}
	if req.Receipt != nil && !utf8.ValidString(req.Receipt.Key) {
		return sdk.Invalid("receipt.key", "must be valid UTF-8")
	}
	return wireMap("labels", req.Labels)
}

func wireMap(field string, m map[string]string) error {
	for k, v := range m {
		if !utf8.ValidString(k) {
			return sdk.Invalid(field, "keys must be valid UTF-8")
		}
		if !utf8.ValidString(v) {
			return sdk.Invalid(field+"."+k, "value must be valid UTF-8")
		}
	}
	return nil
}

package plugin

import (
	"context"
	"errors"

	"github.com/secretgate/secretgate/sdk"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	backendpb "github.com/secretgate/secretgate/sdk/plugin/proto"
)

// ErrChecksumMismatch is returned by Launch when a plugin executable's
// SHA-256 differs from the configured one; the plugin is not started.
var ErrChecksumMismatch = errors.New("plugin checksum mismatch")

// toStatus turns a Backend error into a gRPC status on the plugin side. The
// message is kept as is (backends never put values in errors); the code
// carries the typed error, and a FieldError's field travels as a detail.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	var fe *sdk.FieldError
	switch {
	case errors.As(err, &fe):
		st, derr := status.New(codes.InvalidArgument, err.Error()).
			WithDetails(&backendpb.FieldViolation{Field: fe.Field, Reason: fe.Reason})
		if derr != nil {
			// Only a broken proto registry gets here; the code still says
			// ErrInvalid, the field is lost.
			return status.Error(codes.InvalidArgument, err.Error())
		}
		return st.Err()
	case errors.Is(err, sdk.ErrInvalid):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, sdk.ErrThrottled):
		// The limit and the delay travel as google.rpc details.
		te := &sdk.ThrottleError{Limit: "unnamed limit"}
		errors.As(err, &te)
		st, derr := status.New(codes.ResourceExhausted, err.Error()).WithDetails(
			&errdetails.QuotaFailure{Violations: []*errdetails.QuotaFailure_Violation{{Description: te.Limit}}},
			&errdetails.RetryInfo{RetryDelay: durationpb.New(te.RetryAfter)})
		if derr != nil {
			return status.Error(codes.ResourceExhausted, err.Error())
		}
		return st.Err()
	case errors.Is(err, sdk.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, sdk.ErrAlreadyExists):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, sdk.ErrVersionMismatch):
		// Aborted is gRPC's code for a lost check-and-set race.
		return status.Error(codes.Aborted, err.Error())
	case errors.Is(err, sdk.ErrPermission):
		return status.Error(codes.PermissionDenied, err.Error())
	case errors.Is(err, sdk.ErrUnavailable):
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	}
	return status.Error(codes.Unknown, err.Error())
}

// remoteError is an error that crossed the plugin hop: the plugin's message,
// unwrapping to the typed error its status code stands for.
type remoteError struct {
	msg string
	err error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.err }

// wrapRemote returns target itself when the message adds nothing to it, so
// that a plain `return sdk.ErrNotFound` in a plugin is `== sdk.ErrNotFound`
// on the host too.
func wrapRemote(msg string, target error) error {
	if target == nil {
		return errors.New(msg)
	}
	if msg == target.Error() {
		return target
	}
	return &remoteError{msg: msg, err: target}
}

// fromStatus turns an error of a gRPC call back into the typed error it
// stood for. ctx is the caller's context, exited reports whether the plugin
// process is gone: both tell transport failures from plugin answers.
func fromStatus(ctx context.Context, err error, exited func() bool) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return &remoteError{msg: "plugin call: " + err.Error(), err: sdk.ErrUnavailable}
	}
	msg := st.Message()
	switch st.Code() {
	case codes.InvalidArgument:
		for _, d := range st.Details() {
			if fv, ok := d.(*backendpb.FieldViolation); ok {
				return wrapRemote(msg, &sdk.FieldError{Field: fv.GetField(), Reason: fv.GetReason()})
			}
		}
		return wrapRemote(msg, sdk.ErrInvalid)
	case codes.ResourceExhausted:
		te := &sdk.ThrottleError{}
		for _, d := range st.Details() {
			switch d := d.(type) {
			case *errdetails.QuotaFailure:
				if v := d.GetViolations(); len(v) > 0 {
					te.Limit = v[0].GetDescription()
				}
			case *errdetails.RetryInfo:
				te.RetryAfter = d.GetRetryDelay().AsDuration()
			}
		}
		if te.Limit == "" {
			te.Limit = "unnamed limit"
		}
		return wrapRemote(msg, te)
	case codes.NotFound:
		return wrapRemote(msg, sdk.ErrNotFound)
	case codes.AlreadyExists:
		return wrapRemote(msg, sdk.ErrAlreadyExists)
	case codes.Aborted, codes.FailedPrecondition:
		return wrapRemote(msg, sdk.ErrVersionMismatch)
	case codes.PermissionDenied:
		return wrapRemote(msg, sdk.ErrPermission)
	case codes.Unavailable:
		// Either the backend said so (its message is kept as is) or the
		// transport did because the process is gone (then say that).
		if exited != nil && exited() {
			return wrapRemote("plugin process exited: "+msg, sdk.ErrUnavailable)
		}
		return wrapRemote(msg, sdk.ErrUnavailable)
	case codes.DeadlineExceeded:
		return wrapRemote(msg, context.DeadlineExceeded)
	case codes.Canceled:
		if ctx.Err() != nil {
			return wrapRemote(msg, ctx.Err())
		}
		// Nobody cancelled this call: the connection to the plugin is
		// closing (the plugin was killed).
		return wrapRemote("plugin connection closed: "+msg, sdk.ErrUnavailable)
	}
	if exited != nil && exited() {
		return wrapRemote("plugin process exited: "+msg, sdk.ErrUnavailable)
	}
	return wrapRemote(msg, nil)
}

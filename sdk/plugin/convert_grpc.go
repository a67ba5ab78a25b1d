package plugin

import (
	"time"

	"github.com/secretgate/secretgate/sdk"

	"google.golang.org/protobuf/types/known/timestamppb"

	backendpb "github.com/secretgate/secretgate/sdk/plugin/proto"
)

// Conversions between the Go model and its protobuf mirror. They live here,
// next to the two adapters, so that protobuf types never leak past them.

func toPBTime(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func fromPBTime(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime()
}

// fromPBLabels restores the Go distinction between nil (no labels / keep) and
// an empty map (clear) that a proto3 map cannot carry by itself.
func fromPBLabels(labels map[string]string, set bool) map[string]string {
	if len(labels) == 0 {
		if set {
			return map[string]string{}
		}
		return nil
	}
	return labels
}

func toPBRef(r sdk.Ref) *backendpb.Ref {
	return &backendpb.Ref{Project: r.Project, Name: r.Name, Version: r.Version}
}

func fromPBRef(r *backendpb.Ref) sdk.Ref {
	if r == nil {
		return sdk.Ref{}
	}
	return sdk.Ref{Project: r.GetProject(), Name: r.GetName(), Version: r.GetVersion()}
}

func toPBMeta(m sdk.Meta) *backendpb.Meta {
	return &backendpb.Meta{
		Project:   m.Project,
		Name:      m.Name,
		Keys:      m.Keys,
		Version:   m.Version,
		Labels:    m.Labels,
		LabelsSet: m.Labels != nil,
		CreatedAt: toPBTime(m.CreatedAt),
		UpdatedAt: toPBTime(m.UpdatedAt),
	}
}

func fromPBMeta(m *backendpb.Meta) sdk.Meta {
	if m == nil {
		return sdk.Meta{}
	}
	return sdk.Meta{
		Project:   m.GetProject(),
		Name:      m.GetName(),
		Keys:      m.GetKeys(),
		Version:   m.GetVersion(),
		Labels:    fromPBLabels(m.GetLabels(), m.GetLabelsSet()),
		CreatedAt: fromPBTime(m.GetCreatedAt()),
		UpdatedAt: fromPBTime(m.GetUpdatedAt()),
	}
}

func toPBCapabilities(c sdk.Capabilities) *backendpb.Capabilities {
	return &backendpb.Capabilities{
		Backend:     c.Backend,
		Versions:    c.Versions,
		MaxVersions: int64(c.MaxVersions),
		Cas:         c.CAS,
		Labels:      c.Labels,

		DeletePropagationMs: c.DeletePropagation.Milliseconds(),
		Receipts:            c.Receipts,
	}
}

func fromPBCapabilities(c *backendpb.Capabilities) sdk.Capabilities {
	if c == nil {
		return sdk.Capabilities{}
	}
	return sdk.Capabilities{
		Backend:     c.GetBackend(),
		Versions:    c.GetVersions(),
		MaxVersions: int(c.GetMaxVersions()),
		CAS:         c.GetCas(),
		Labels:      c.GetLabels(),

		DeletePropagation: time.Duration(c.GetDeletePropagationMs()) * time.Millisecond,
		Receipts:          c.GetReceipts(),
	}
}

func toPBWrite(req sdk.WriteRequest) *backendpb.WriteRequest {
	return &backendpb.WriteRequest{
		Project:         req.Project,
		Name:            req.Name,
		Data:            req.Data,
		Labels:          req.Labels,
		LabelsSet:       req.Labels != nil,
		Mode:            backendpb.WriteMode(req.Mode),
		ExpectedVersion: req.ExpectedVersion,
		Receipt:         toPBReceipt(req.Receipt),
	}
}

func toPBReceipt(r *sdk.AuditReceipt) *backendpb.Receipt {
	if r == nil {
		return nil
	}
	return &backendpb.Receipt{Key: r.Key, Record: r.Record}
}

func fromPBReceipt(r *backendpb.Receipt) *sdk.AuditReceipt {
	if r == nil {
		return nil
	}
	return &sdk.AuditReceipt{Key: r.GetKey(), Record: r.GetRecord()}
}

func fromPBWrite(req *backendpb.WriteRequest) sdk.WriteRequest {
	data := req.GetData()
	if data == nil {
		// A write always carries data; an empty map reaches the backend as
		// empty (and is rejected there), never as nil surprises.
		data = map[string]string{}
	}
	return sdk.WriteRequest{
		Project:         req.GetProject(),
		Name:            req.GetName(),
		Data:            data,
		Labels:          fromPBLabels(req.GetLabels(), req.GetLabelsSet()),
		Mode:            sdk.WriteMode(req.GetMode()),
		ExpectedVersion: req.GetExpectedVersion(),
		Receipt:         fromPBReceipt(req.GetReceipt()),
	}
}

package backendtest

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/sdk"
)

func receiptTests() []subtest {
	return []subtest{
		{"ReceiptKeptWithWrite", testReceiptKeptWithWrite},
		{"ReceiptNotKeptWhenRefused", testReceiptNotKeptWhenRefused},
	}
}

// keeper returns the backend's ReceiptKeeper, skipping the subtest when
// the backend does not claim receipts.
func (s *suite) keeper(t *testing.T) sdk.ReceiptKeeper {
	t.Helper()
	if !s.caps.Receipts {
		t.Skip("Capabilities.Receipts is false: audit receipts not checked")
	}
	k, ok := s.b.(sdk.ReceiptKeeper)
	require.True(t, ok, "Capabilities.Receipts is true, so the backend must implement sdk.ReceiptKeeper")
	return k
}

// kept returns the receipts of keys the backend keeps, by key. Receipts
// are global to the backend and subtests run in parallel: only a
// subtest's own keys are looked at.
func kept(t *testing.T, ctx context.Context, k sdk.ReceiptKeeper, keys ...string) map[string]sdk.KeptReceipt {
	t.Helper()
	all, err := k.Receipts(ctx)
	require.NoError(t, err, "Receipts")
	for i := 1; i < len(all); i++ {
		require.Less(t, all[i-1].Key, all[i].Key, "Receipts must be in key order, without repeats")
	}
	out := map[string]sdk.KeptReceipt{}
	for _, r := range all {
		for _, key := range keys {
			if r.Key == key {
				out[key] = r
			}
		}
	}
	return out
}

// testReceiptKeptWithWrite: a write's receipt is kept with the version it
// created, record as sent, until forgotten; forgetting a key never kept,
// or one already forgotten, is no error.
func testReceiptKeptWithWrite(t *testing.T, s *suite) {
	k := s.keeper(t)
	ctx, p := ctxFor(t), newProject(t)
	s.cleanup(t, p, "receipted")
	k1, k2 := "r-"+p+"-1", "r-"+p+"-2"
	rec1 := []byte(`{"action":"create","secret":"receipted","phase":"intent"}`)
	m1, err := s.b.Write(ctx, sdk.WriteRequest{Project: p, Name: "receipted", Data: map[string]string{"k": "v1"}, Mode: sdk.WriteCreate,
		Receipt: &sdk.AuditReceipt{Key: k1, Record: rec1}})
	require.NoError(t, err, "Write with a receipt")
	m2, err := s.b.Write(ctx, sdk.WriteRequest{Project: p, Name: "receipted", Data: map[string]string{"k": "v2"}, Mode: sdk.WriteReplace,
		Receipt: &sdk.AuditReceipt{Key: k2, Record: []byte(strings.Repeat("x", sdk.MaxReceiptRecordBytes))}})
	require.NoError(t, err, "Write with a receipt of the largest size")

	got := kept(t, ctx, k, k1, k2)
	require.Len(t, got, 2, "both receipts must be kept")
	require.Equal(t, rec1, got[k1].Record, "the receipt's record, byte for byte")
	require.Equal(t, m1.Version, got[k1].Version, "the receipt names the version its write created")
	require.Equal(t, m2.Version, got[k2].Version)
	require.Len(t, got[k2].Record, sdk.MaxReceiptRecordBytes)

	require.NoError(t, k.ForgetReceipts(ctx, []string{k1, "r-" + p + "-never"}), "ForgetReceipts with a key never kept")
	require.Equal(t, []string{k2}, slices.Collect(maps.Keys(kept(t, ctx, k, k1, k2))), "only the forgotten receipt goes")
	require.NoError(t, k.ForgetReceipts(ctx, []string{k1, k2}), "ForgetReceipts of a key already forgotten")
	require.Empty(t, kept(t, ctx, k, k1, k2))
	require.NoError(t, k.ForgetReceipts(ctx, nil), "ForgetReceipts of nothing")
}

// testReceiptNotKeptWhenRefused: a refused write (exists, stale
// check-and-set, missing secret) keeps no receipt, and an invalid receipt
// refuses the write, naming the field.
func testReceiptNotKeptWhenRefused(t *testing.T, s *suite) {
	k := s.keeper(t)
	ctx, p := ctxFor(t), newProject(t)
	s.cleanup(t, p, "refused")
	m := s.create(t, ctx, p, "refused", map[string]string{"k": "v"}, nil)
	keys := []string{"r-" + p + "-exists", "r-" + p + "-stale", "r-" + p + "-missing"}
	reqs := []sdk.WriteRequest{
		{Project: p, Name: "refused", Mode: sdk.WriteCreate},
		{Project: p, Name: "refused", Mode: sdk.WriteReplace, ExpectedVersion: m.Version + 1},
		{Project: p, Name: "absent", Mode: sdk.WriteReplace},
	}
	wants := []error{sdk.ErrAlreadyExists, sdk.ErrVersionMismatch, sdk.ErrNotFound}
	for i, req := range reqs {
		req.Data = map[string]string{"k": "refused"}
		req.Receipt = &sdk.AuditReceipt{Key: keys[i], Record: []byte(`{"phase":"intent"}`)}
		_, err := s.b.Write(ctx, req)
		requireIs(t, err, wants[i], "Write "+keys[i])
	}
	require.Empty(t, kept(t, ctx, k, keys...), "a refused write must keep no receipt")

	for _, bad := range []struct {
		r     sdk.AuditReceipt
		field string
	}{
		{sdk.AuditReceipt{Key: "", Record: []byte("{}")}, "receipt.key"},
		{sdk.AuditReceipt{Key: strings.Repeat("k", sdk.MaxReceiptKeyBytes+1), Record: []byte("{}")}, "receipt.key"},
		{sdk.AuditReceipt{Key: "r-" + p + "-empty"}, "receipt.record"},
		{sdk.AuditReceipt{Key: "r-" + p + "-large", Record: make([]byte, sdk.MaxReceiptRecordBytes+1)}, "receipt.record"},
	} {
		_, err := s.b.Write(ctx, sdk.WriteRequest{Project: p, Name: "refused", Data: map[string]string{"k": "bad"}, Mode: sdk.WriteUpsert, Receipt: &bad.r})
		requireIs(t, err, sdk.ErrInvalid, "Write with an invalid "+bad.field)
		var fe *sdk.FieldError
		require.True(t, errors.As(err, &fe), "an invalid receipt must be a *sdk.FieldError, got %v", err)
		require.Equal(t, bad.field, fe.Field)
	}
	require.Equal(t, m.Version, s.describe(t, ctx, p, "refused").Version, "no refused write may store a version")
}

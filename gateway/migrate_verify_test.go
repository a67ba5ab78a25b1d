package gateway

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/api"
)

// readBackOther makes a target read back, for the secret name, a value
// other than the one it stored.
func readBackOther(name string) func(sdk.Secret) (sdk.Secret, error) {
	return mangleReadBack(name, func(sec sdk.Secret) (sdk.Secret, error) {
		sec.Data = map[string]string{"v": "not what was written"}
		return sec, nil
	})
}

// mangleReadBack applies f to the reads of one secret only.
func mangleReadBack(name string, f func(sdk.Secret) (sdk.Secret, error)) func(sdk.Secret) (sdk.Secret, error) {
	return func(sec sdk.Secret) (sdk.Secret, error) {
		if sec.Name != name {
			return sec, nil
		}
		return f(sec)
	}
}

// Every copied secret is read back from the target and compared with the
// source: a target that acknowledges the write and then answers something
// else fails that secret (and so the migration: no switch), while the other
// secrets verify.
func TestMigrationVerifiesReadBack(t *testing.T) {
	tests := []struct {
		name     string
		readBack func(sdk.Secret) (sdk.Secret, error)
		err      string
	}{
		{"another value", readBackOther("k01"), errVerify.Error()},
		{"a key more", mangleReadBack("k01", func(sec sdk.Secret) (sdk.Secret, error) {
			data := sdk.CloneData(sec.Data)
			data["extra"] = ""
			sec.Data = data
			return sec, nil
		}), errVerify.Error()},
		{"no key", mangleReadBack("k01", func(sec sdk.Secret) (sdk.Secret, error) {
			sec.Data = map[string]string{}
			return sec, nil
		}), errVerify.Error()},
		{"other labels", mangleReadBack("k01", func(sec sdk.Secret) (sdk.Secret, error) {
			sec.Labels = map[string]string{"n": "not what was written"}
			return sec, nil
		}), errVerify.Error()},
		{"not found after the write", mangleReadBack("k01", func(sec sdk.Secret) (sdk.Secret, error) {
			return sdk.Secret{}, sdk.NotFound(sec.Project, sec.Name)
		}), "reading back from the target"},
	}
	for _, tc := range tests {
		for _, versions := range []string{"latest", "all"} {
			t.Run(tc.name+"/"+versions, func(t *testing.T) {
				e := newMigrateEnv(t)
				seed(t, e.src.memBackend, "payments", 4, func(i int) string { return fmt.Sprint("v", i) })
				e.dst.readBack = tc.readBack
				rep := e.wait(t, e.start(t, map[string]any{"source": "a", "target": "b", "projects": []string{"payments"},
					"versions": versions, "on_conflict": "fail", "switch": true}))
				require.Equal(t, api.MigrationFailed, rep.State, "%+v", rep)
				require.Equal(t, 4, rep.Total)
				require.Equal(t, 4, rep.Copied, "every secret was written")
				require.Equal(t, 3, rep.Verified, "the secret read back different is not counted verified")
				require.Equal(t, 1, rep.Failed)
				require.Len(t, rep.Errors, 1)
				require.Contains(t, rep.Errors["k01"], tc.err)
				require.False(t, rep.Switched, "a failed verification never switches")
				rt, _ := e.srv.Routing().Lookup("payments")
				require.Equal(t, Route{Project: "payments", Backend: "a"}, rt, "on the source, writable")

				r := e.h.do(t, "GET", "/metrics", "", nil)
				require.Equal(t, http.StatusOK, r.code)
				require.Contains(t, string(r.body), `secretgate_migration_secrets_total{source="a",target="b",outcome="verified"} 3`)
				require.Contains(t, string(r.body), `secretgate_migration_secrets_total{source="a",target="b",outcome="failed"} 1`)
				sec, err := e.src.memBackend.Read(context.Background(), sdk.Ref{Project: "payments", Name: "k01"})
				require.NoError(t, err)
				require.Equal(t, "v1", sec.Data["v"], "the source is never modified")
			})
		}
	}
}

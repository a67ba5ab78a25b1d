package gateway

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/api"
)

// The hand-written encoder of a listing must write exactly the bytes that
// c.JSON wrote for api.SecretList, whatever the names, keys, labels and
// times hold.
func TestAppendSecretListMatchesEncodingJSON(t *testing.T) {
	t1 := time.Date(2024, 2, 29, 23, 59, 58, 123456789, time.FixedZone("x", 5*3600+1800))
	t2 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name  string
		metas []sdk.Meta
		next  string
	}{
		{"empty page", nil, ""},
		{"empty page with a token", []sdk.Meta{}, "tok+/="},
		{"plain", []sdk.Meta{
			{Project: "p", Name: "db", Keys: []string{"password", "user"}, Version: 7, CreatedAt: t2, UpdatedAt: t2},
			{Project: "p", Name: "db2", Keys: []string{"k"}, Version: 1, Labels: map[string]string{"team": "a", "env": "prod", "b": ""}, CreatedAt: t1, UpdatedAt: t2},
		}, "next-token"},
		{"nil and empty keys and labels, zero times", []sdk.Meta{
			{Project: "p", Name: "a"},
			{Project: "p", Name: "b", Keys: []string{}, Labels: map[string]string{}},
			{Project: "p", Name: "c", CreatedAt: t2},
			{Project: "p", Name: "d", UpdatedAt: t1},
		}, ""},
		{"strings that need escaping", []sdk.Meta{
			{Project: "p<&>", Name: "quote\"back\\slash", Keys: []string{"tab\t", "nl\n", "\x00\x1f", "\x7f"},
				Labels: map[string]string{"<k>": "a&b", "é": "ü", "line\u2028sep": "para\u2029sep", "bad\xffutf8": "\xc3\x28"}},
		}, "<&>\u2028"},
		{"times before 1970 and at the edges of RFC 3339", []sdk.Meta{
			{Project: "p", Name: "old", CreatedAt: time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC), UpdatedAt: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)},
			{Project: "p", Name: "unix0", CreatedAt: time.Unix(0, 0), UpdatedAt: time.Unix(0, 0).In(time.FixedZone("m", -7*3600))},
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, err := json.Marshal(secretListOf(tt.metas, tt.next))
			require.NoError(t, err)
			got, ok := appendSecretList([]byte("junk"), tt.metas, tt.next)
			require.True(t, ok)
			require.Equal(t, "junk"+string(want), string(got))
		})
	}
}

// GET's and metadata's answers: exactly what c.JSON wrote for api.Secret
// and api.Metadata, values included (escapes, invalid UTF-8, HTML
// characters), and data never null.
func TestAppendSecretMatchesEncodingJSON(t *testing.T) {
	t1 := time.Date(2024, 2, 29, 23, 59, 58, 123456789, time.FixedZone("x", 5*3600+1800))
	meta := sdk.Meta{Project: "p", Name: "db", Keys: []string{"password", "user"}, Version: 7, Labels: map[string]string{"team": "a", "env": "<prod>"}, CreatedAt: t1, UpdatedAt: t1}
	tests := []struct {
		name string
		sec  sdk.Secret
	}{
		{"plain", sdk.Secret{Meta: meta, Data: map[string]string{"user": "svc", "password": "s3cr3t"}}},
		{"nil data, nil keys and labels, zero times", sdk.Secret{Meta: sdk.Meta{Project: "p", Name: "n", Version: 1}}},
		{"empty data", sdk.Secret{Meta: meta, Data: map[string]string{}}},
		{"many keys, in order", sdk.Secret{Meta: meta, Data: map[string]string{"k9": "9", "k1": "1", "a": "", "Z": "z", "k10": "10", "b": "b", "c": "c", "d": "d", "e": "e", "f": "f"}}},
		{"values that need escaping", sdk.Secret{Meta: meta, Data: map[string]string{
			"pem": "-----BEGIN KEY-----\nAAA+/=\n-----END KEY-----\n", "html": "<a href=\"x\">&amp;</a>", "ctl": "\x00\x01\t\r\x7f",
			"utf8": "pässwörd ✓ \u2028\u2029", "bad": "\xff\xfe\xc3\x28", "back\\slash": "\\",
		}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := tt.sec.Data
			if data == nil {
				data = map[string]string{}
			}
			want, err := json.Marshal(api.Secret{Metadata: toMetadata(tt.sec.Meta), Data: data})
			require.NoError(t, err)
			got, ok := appendSecret([]byte("junk"), &tt.sec)
			require.True(t, ok)
			require.Equal(t, "junk"+string(want), string(got))

			want, err = json.Marshal(toMetadata(tt.sec.Meta))
			require.NoError(t, err)
			got, ok = appendMetadata(nil, &tt.sec.Meta)
			require.True(t, ok)
			require.Equal(t, string(want), string(got))
		})
	}
	for _, y := range []int{-1, 10000} {
		sec := sdk.Secret{Meta: sdk.Meta{Project: "p", Name: "n", CreatedAt: time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC)}}
		_, ok := appendSecret(nil, &sec)
		require.False(t, ok, "year %d", y)
		_, ok = appendMetadata(nil, &sec.Meta)
		require.False(t, ok, "year %d", y)
	}
}

// A time encoding/json cannot write is reported, so that the handler takes
// encoding/json's path and fails the way it always did.
func TestAppendSecretListRefusesTimesJSONRefuses(t *testing.T) {
	for _, y := range []int{-1, 10000} {
		metas := []sdk.Meta{{Project: "p", Name: "n", UpdatedAt: time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC)}}
		_, err := json.Marshal(secretListOf(metas, ""))
		require.Error(t, err)
		_, ok := appendSecretList(nil, metas, "")
		require.False(t, ok, "year %d", y)
	}
}

// The headers of the answer are those of c.JSON (framing included).
func TestEncodedJSONRendersLikeCJSON(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	metas := make([]sdk.Meta, 100)
	for i := range metas {
		metas[i] = sdk.Meta{Project: "p", Name: "secret-name-long-enough-" + string(rune('a'+i%26)), Keys: []string{"password", "username"}, Version: int64(i), CreatedAt: time.Unix(int64(i), 0)}
	}
	serve := func(h gin.HandlerFunc) *httptest.ResponseRecorder {
		t.Helper()
		r := gin.New()
		r.GET("/", h)
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
		return w
	}
	want := serve(func(c *gin.Context) { c.JSON(http.StatusOK, secretListOf(metas, "t")) })
	got := serve(func(c *gin.Context) {
		b, ok := appendSecretList(nil, metas, "t")
		require.True(t, ok)
		c.Render(http.StatusOK, encodedJSON(b))
	})
	require.Equal(t, want.Code, got.Code)
	require.Equal(t, want.Header(), got.Header())
	require.Equal(t, want.Body.String(), got.Body.String())
}

func secretListOf(metas []sdk.Meta, next string) api.SecretList {
	out := api.SecretList{Secrets: make([]api.Metadata, 0, len(metas)), NextPageToken: next}
	for _, m := range metas {
		out.Secrets = append(out.Secrets, toMetadata(m))
	}
	return out
}

func BenchmarkListJSON(b *testing.B) {
	metas := make([]sdk.Meta, 100)
	for i := range metas {
		metas[i] = sdk.Meta{Project: "default", Name: "load-" + string(rune('a'+i%26)), Keys: []string{"password", "username"}, Version: 3, CreatedAt: time.Now(), UpdatedAt: time.Now()}
	}
	b.Run("encoding/json", func(b *testing.B) {
		for b.Loop() {
			if _, err := json.Marshal(secretListOf(metas, "")); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("appendSecretList", func(b *testing.B) {
		var buf []byte
		for b.Loop() {
			buf, _ = appendSecretList(buf[:0], metas, "")
		}
	})
}

package idtoken

// What a token is made of: the JWS compact form's header and segments, and
// the registered claims (iss, aud, exp, nbf, iat) checked against an issuer.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"
)

// LooksLikeJWT reports whether token has the shape of a JWS compact
// serialization: three base64url segments whose first decodes to a JSON
// object with a string "alg". It verifies nothing; it lets the gateway tell
// a JWT from a static token before choosing how to check it.
func LooksLikeJWT(token string) bool {
	_, _, err := parseHeader(token)
	return err == nil
}

type header struct {
	Alg *string `json:"alg"`
	Kid string  `json:"kid"`
}

// parseHeader checks the token's shape and returns its header and payload
// segment.
func parseHeader(token string) (header, string, error) {
	var h header
	if len(token) > MaxTokenSize {
		return h, "", fmt.Errorf("longer than %d bytes", MaxTokenSize)
	}
	hs, rest, ok1 := strings.Cut(token, ".")
	ps, ss, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.Contains(ss, ".") || hs == "" || ps == "" {
		return h, "", errors.New("not three dot-separated segments")
	}
	for _, seg := range []string{hs, ps, ss} {
		if !isBase64URL(seg) {
			return h, "", errors.New("a segment is not base64url")
		}
	}
	if err := decodeSegment(hs, &h); err != nil || h.Alg == nil {
		return h, "", errors.New(`the header is not a JSON object with an "alg"`)
	}
	return h, ps, nil
}

func isBase64URL(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func decodeSegment(seg string, out any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

// decodeClaims reads the verified payload twice from the same bytes: as a
// generic map for the rules and as the registered claims, with the standard
// library's JSON decoder for both (so a duplicated key means the same in
// both readings).
func decodeClaims(payload []byte) (map[string]any, jwt.Claims, error) {
	var claims map[string]any
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&claims); err != nil || claims == nil {
		return nil, jwt.Claims{}, errors.New("the payload is not a JSON object")
	}
	var std jwt.Claims
	if err := json.Unmarshal(payload, &std); err != nil {
		return nil, jwt.Claims{}, errors.New("a registered claim (iss, sub, aud, exp, nbf, iat, jti) has the wrong type")
	}
	return claims, std, nil
}

// checkClaims checks iss, aud, exp, nbf, iat and the lifetime, and returns
// the expiry.
func checkClaims(is *issuerState, c jwt.Claims, now time.Time) (time.Time, error) {
	name := is.cfg.Name
	if c.Issuer != is.cfg.IssuerURL {
		return time.Time{}, tokenErr(ErrUnknownIssuer, name, "the token's iss is not this issuer")
	}
	audOK := false
	for _, a := range is.cfg.Audiences {
		if c.Audience.Contains(a) {
			audOK = true
			break
		}
	}
	if !audOK {
		return time.Time{}, tokenErr(ErrAudience, name, fmt.Sprintf("wrong audience: the token's aud must contain one of %s", strings.Join(is.cfg.Audiences, ", ")))
	}
	if c.Expiry == nil {
		return time.Time{}, tokenErr(ErrClaims, name, "the token has no exp claim")
	}
	exp := c.Expiry.Time()
	leeway := is.leeway
	if now.Add(-leeway).After(exp) {
		return time.Time{}, tokenErr(ErrExpired, name, "token expired at "+exp.UTC().Format(time.RFC3339))
	}
	if c.NotBefore != nil && now.Add(leeway).Before(c.NotBefore.Time()) {
		return time.Time{}, tokenErr(ErrNotYetValid, name, "token not valid before "+c.NotBefore.Time().UTC().Format(time.RFC3339))
	}
	if c.IssuedAt != nil && now.Add(leeway).Before(c.IssuedAt.Time()) {
		return time.Time{}, tokenErr(ErrNotYetValid, name, "token issued in the future (iat "+c.IssuedAt.Time().UTC().Format(time.RFC3339)+")")
	}
	if max := is.cfg.MaxTokenLifetime; max > 0 {
		// With iat the lifetime is the issuer's own statement; without
		// it, what is left of the token, with the leeway for clock skew.
		life, limit := exp.Sub(now), max+leeway
		if c.IssuedAt != nil {
			life, limit = exp.Sub(c.IssuedAt.Time()), max
		}
		if life > limit {
			return time.Time{}, tokenErr(ErrLifetime, name, fmt.Sprintf("token lifetime %s exceeds max_token_lifetime %s", life.Round(time.Second), max))
		}
	}
	return exp, nil
}

// quoteCut quotes an attacker-chosen header or claim value for an error
// message, cut to a readable length.
func quoteCut(s string) string {
	const max = 64
	if len(s) > max {
		return fmt.Sprintf("%q…", s[:max])
	}
	return fmt.Sprintf("%q", s)
}

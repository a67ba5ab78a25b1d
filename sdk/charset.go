package sdk

// The model's name rules as byte-class checks. Each says the same as the
// pattern next to it (sdk's tests hold the two to agreement); regexp
// matching showed up in CPU profiles of reads on both sides of the plugin
// hop, where every call validates its project and name.
// Every allowed character is ASCII, so a byte of a multi-byte rune never
// passes a class.

const labelKeyPattern = `^[a-z][a-z0-9_-]{0,62}$`

func isLowerDigit(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }
func isAlnum(c byte) bool      { return isLowerDigit(c) || 'A' <= c && c <= 'Z' }

// all reports whether every byte of s[from:] is in the class.
func all(s string, from int, in func(byte) bool) bool {
	for i := from; i < len(s); i++ {
		if !in(s[i]) {
			return false
		}
	}
	return true
}

// validProject: ^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$
func validProject(s string) bool {
	n := len(s)
	return n >= 1 && n <= 63 && isLowerDigit(s[0]) && isLowerDigit(s[n-1]) &&
		all(s[:n-1], 1, func(c byte) bool { return isLowerDigit(c) || c == '-' })
}

// validName: ^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$
func validName(s string) bool {
	return len(s) >= 1 && len(s) <= 128 && isAlnum(s[0]) && validPrefix(s)
}

// validPrefix (of a name): ^[A-Za-z0-9_-]{1,128}$
func validPrefix(s string) bool {
	return len(s) >= 1 && len(s) <= 128 && all(s, 0, func(c byte) bool { return isAlnum(c) || c == '_' || c == '-' })
}

// validKey: ^[A-Za-z0-9_.-]{1,128}$
func validKey(s string) bool {
	return len(s) >= 1 && len(s) <= 128 && all(s, 0, func(c byte) bool { return isAlnum(c) || c == '_' || c == '.' || c == '-' })
}

// validLabelKey: labelKeyPattern
func validLabelKey(s string) bool {
	return len(s) >= 1 && len(s) <= 63 && 'a' <= s[0] && s[0] <= 'z' &&
		all(s, 1, func(c byte) bool { return isLowerDigit(c) || c == '_' || c == '-' })
}

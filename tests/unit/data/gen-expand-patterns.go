// Generates tests/unit/data/expand-patterns.jsonl: ${v#p} ${v##p} ${v%p} ${v%%p} ${v/p/r}
// ${v//p/r} cases with the results Go's regexp gives when the shell pattern is converted to a
// regular expression the way BuildKit's Dockerfile frontend does (greedy .* for ## %% and /,
// lazy .*? for # %, ^-anchored for the trims; the suffix trims run on the reversed pattern and
// value; ReplaceAllString for //). The C tests compare cimg's expansion with these results.
//
//   go run gen-expand-patterns.go > expand-patterns.jsonl    (golang-go, a Debian package; the
//                                                             tests only read its output)
package main

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"regexp"
	"strings"
)

func toRegex(pat string, greedy, anchored bool) *regexp.Regexp {
	var b strings.Builder
	if anchored {
		b.WriteByte('^')
	}
	rs := []rune(pat)
	for i := 0; i < len(rs); i++ {
		switch r := rs[i]; r {
		case '*':
			if greedy {
				b.WriteString(".*")
			} else {
				b.WriteString(".*?")
			}
		case '?':
			b.WriteByte('.')
		case '\\':
			i++
			b.WriteString(regexp.QuoteMeta(string(rs[i])))
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	return regexp.MustCompile(b.String())
}

func reverseRunes(s string) string {
	r := []rune(s)
	for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
		r[i], r[j] = r[j], r[i]
	}
	return string(r)
}

// The pattern reversed token by token (an escape stays before the rune it escapes).
func reversePattern(p string) string {
	rs := []rune(p)
	var toks []string
	for i := 0; i < len(rs); i++ {
		if rs[i] == '\\' {
			toks = append(toks, string(rs[i:i+2]))
			i++
		} else {
			toks = append(toks, string(rs[i]))
		}
	}
	var b strings.Builder
	for i := len(toks) - 1; i >= 0; i-- {
		b.WriteString(toks[i])
	}
	return b.String()
}

func trimPrefix(p, v string, greedy bool) string {
	if idx := toRegex(p, greedy, true).FindStringIndex(v); idx != nil {
		return v[idx[1]:]
	}
	return v
}

func main() {
	rng := rand.New(rand.NewSource(20261124))
	patToks := []string{"a", "b", "*", "*", "?", `\*`, "é", "-"}
	valRunes := []string{"a", "b", "a", "b", "\n", "é", "*", "-"}
	enc := json.NewEncoder(os.Stdout)
	enc.SetEscapeHTML(false)
	seen := map[string]bool{}
	for n := 0; n < 3000; {
		var p, v strings.Builder
		for i := rng.Intn(5); i > 0; i-- {
			p.WriteString(patToks[rng.Intn(len(patToks))])
		}
		for i := rng.Intn(9); i > 0; i-- {
			v.WriteString(valRunes[rng.Intn(len(valRunes))])
		}
		pat, val := p.String(), v.String()
		op := []string{"#", "##", "%", "%%", "/", "//"}[rng.Intn(6)]
		if op == "/" && pat == "" {
			continue // ${A//r} would be ${A//…} without its second slash
		}
		var want, word string
		switch op {
		case "#", "##":
			want = trimPrefix(pat, val, op == "##")
			word = "${A" + op + pat + "}"
		case "%", "%%":
			want = reverseRunes(trimPrefix(reversePattern(pat), reverseRunes(val), op == "%%"))
			word = "${A" + op + pat + "}"
		default:
			re := toRegex(pat, true, false)
			if op == "//" {
				want = re.ReplaceAllString(val, "<>")
			} else if idx := re.FindStringIndex(val); idx != nil {
				want = val[:idx[0]] + "<>" + val[idx[1]:]
			} else {
				want = val
			}
			word = "${A" + op + pat + "/<>}"
		}
		key := word + "\x00" + val
		if seen[key] {
			continue
		}
		seen[key] = true
		n++
		if err := enc.Encode(map[string]string{"word": word, "value": val, "want": want}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}

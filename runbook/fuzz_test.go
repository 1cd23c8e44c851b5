package runbook

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func FuzzParse(f *testing.F) {
	f.Add(DefaultRunbookTOML())
	f.Add([]byte("title = \"t\"\n[[phase]]\nid = \"p\"\ntitle = \"P\"\n[[phase.step]]\nid = \"s\"\ntitle = \"S\"\nkind = \"command\"\nrun = \"true\"\n"))
	f.Add([]byte("title = \"t\"\n[[phase]]\nid = \"p\"\ntitle = \"P\"\n[[phase.step]]\nid = \"s\"\ntitle = \"S\"\nkind = \"sql\"\nsql = \"SELECT 1\"\nexpect = { rows = \">= 1\", equals = [[\"1\"]] }\n"))
	f.Add([]byte("title = \"t\"\n[[phase]]\nid = \"p\"\n[[phase.step]]\nkind = \"check\"\ncheck = \"registration\"\nsecret = \"x\"\n"))
	f.Add([]byte("[[phase.step]]\n[[phase]]\nid = 1\n"))
	f.Add([]byte("title = \"\"\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rb, err := Parse("fuzz.toml", data)
		if err != nil {
			// Every error names the file, so an operator knows where to look.
			if !strings.HasPrefix(err.Error(), "fuzz.toml") {
				t.Fatalf("error without file name: %v", err)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error is not a ParseError: %T %v", err, err)
			}
			return
		}
		phases := map[string]bool{}
		for _, p := range rb.Phases {
			if !idRe.MatchString(p.ID) || phases[p.ID] || len(p.Steps) == 0 {
				t.Fatalf("invalid phase accepted: %+v", p)
			}
			phases[p.ID] = true
			steps := map[string]bool{}
			for i := range p.Steps {
				s := &p.Steps[i]
				if !idRe.MatchString(s.ID) || steps[s.ID] {
					t.Fatalf("invalid step accepted: %+v", s)
				}
				steps[s.ID] = true
				switch s.Kind {
				case KindCommand:
					if s.Run == "" {
						t.Fatal("command step without run accepted")
					}
				case KindSQL:
					if s.SQL == "" {
						t.Fatal("sql step without sql accepted")
					}
				case KindCheck:
					if s.Check == "" {
						t.Fatal("check step without check accepted")
					}
				case KindRolling:
					if s.Run == "" || s.Servers == "" {
						t.Fatal("rolling step without run or servers accepted")
					}
				case KindManual:
					if s.Destructive {
						t.Fatal("destructive manual step accepted")
					}
				default:
					t.Fatalf("unknown kind accepted: %q", s.Kind)
				}
				if _, _, err := rb.Select(Target{Phase: p.ID, Step: s.ID}); err != nil {
					t.Fatalf("accepted step cannot be selected: %v", err)
				}
			}
		}
	})
}

func FuzzParseEnvironment(f *testing.F) {
	for _, name := range EnvironmentNames() {
		data, _ := EnvironmentTOML(name)
		f.Add(data)
	}
	f.Add([]byte("loopback_only = true\n[vars]\nA = \"http://127.0.0.1\"\nB = \"${A}/x\"\nC = \"${C}\"\nD = \"${env:HOME}\"\n"))
	f.Add([]byte("[vars]\nA = \"${file:/nonexistent}\"\nB = \"$${A}\"\n[commands]\nx = \"true\"\n"))
	f.Add([]byte("secrets = [\"A\"]\n[vars]\nA = \"${\"\n"))
	dir := f.TempDir() // imports and ${file:...} resolve against it; nothing is written there
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := ParseEnvironment(filepath.Join(dir, "fuzz.toml"), data, dir)
		if err != nil {
			return
		}
		for _, name := range env.VarNames() {
			v, err := env.Lookup(name)
			if err == nil && env.IsSecret(name) && strings.TrimSpace(v) != "" && strings.Contains(env.Redact(v), v) {
				t.Fatalf("secret %s not redacted", name)
			}
			if err == nil && env.LoopbackOnly {
				if err := checkLoopbackVar(name, v); err != nil {
					t.Fatalf("loopback-only environment accepted %s: %v", name, err)
				}
			}
		}
	})
}

func FuzzParseDotenv(f *testing.F) {
	f.Add([]byte("A=1\nB=two words\n# comment\n\nC=x=y\r\n"))
	f.Add([]byte("A=1\nA=2\n"))
	f.Add([]byte(" =\n=x\nA B=1\n"))
	f.Add([]byte("A=\x00\xff\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		vars, err := ParseDotenv("fuzz.env", data)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error is not a ParseError: %v", err)
			}
			return
		}
		// Whatever was accepted writes back and reads again identically.
		var b strings.Builder
		for k, v := range vars {
			if !varNameRe.MatchString(k) || strings.ContainsAny(v, "\n\r\x00") {
				t.Fatalf("accepted %q=%q", k, v)
			}
			b.WriteString(k + "=" + v + "\n")
		}
		again, err := ParseDotenv("again.env", []byte(b.String()))
		if err != nil || len(again) != len(vars) {
			t.Fatalf("round trip: %v (%d vs %d keys)", err, len(again), len(vars))
		}
		for k, v := range vars {
			if again[k] != v {
				t.Fatalf("round trip changed %s: %q -> %q", k, v, again[k])
			}
		}
	})
}

func FuzzExpand(f *testing.F) {
	f.Add("plain")
	f.Add("${A}-$$-${B}$")
	f.Add("${")
	f.Add("$${A}${A}")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := expand(s, func(ref string) (string, error) { return "<" + ref + ">", nil })
		if err != nil {
			return
		}
		// Without references or "$$", expansion is the identity.
		if !strings.Contains(s, "${") && !strings.Contains(s, "$$") && got != s {
			t.Fatalf("expand(%q) = %q", s, got)
		}
	})
}

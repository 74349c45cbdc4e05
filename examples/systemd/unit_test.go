// Package systemd_test checks the systemd example: the unit has the settings README.md
// describes, its stop timeout covers the node's stop budget, and, where systemd-analyze is
// installed, systemd itself accepts the unit and rates its exposure low.
package systemd_test

import (
	"bufio"
	"github.com/groupcached/groupcached/httpapi"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

const unitFile = "groupcached.service"

// unit maps "Section.Key" to the values of every line that sets it, in order.
type unit map[string][]string

func parseUnit(t *testing.T, path string) unit {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
		default:
			key, value, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: not a setting: %q", path, n, line)
			}
			u[section+"."+strings.TrimSpace(key)] = append(u[section+"."+strings.TrimSpace(key)], strings.TrimSpace(value))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

// last is the value that wins: systemd applies a unit's lines in order.
func (u unit) last(key string) (string, bool) {
	v := u[key]
	if len(v) == 0 {
		return "", false
	}
	return v[len(v)-1], true
}

// stopBudget is the bound the node puts on a graceful stop (readiness delay, leave, drain),
// as the binary configures it.
func stopBudget(t *testing.T) time.Duration {
	t.Helper()
	return httpapi.DefaultNodeConfig().StopTimeout
}

// systemdSeconds parses a systemd time span of the forms this unit uses: "15", "15s", "2min".
func systemdSeconds(t *testing.T, span string) time.Duration {
	t.Helper()
	s := strings.TrimSpace(span)
	s = strings.Replace(s, "min", "m", 1)
	if _, err := strconv.Atoi(s); err == nil {
		s += "s"
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("time span %q: %v", span, err)
	}
	return d
}

func TestUnit(t *testing.T) {
	u := parseUnit(t, unitFile)
	for _, want := range []struct{ key, value string }{
		{"Service.DynamicUser", "yes"},
		{"Service.Restart", "on-failure"},
		{"Service.RestartPreventExitStatus", "2"},
		{"Service.NoNewPrivileges", "yes"},
		{"Service.ProtectSystem", "strict"},
		{"Service.ProtectHome", "yes"},
		{"Service.PrivateTmp", "yes"},
		{"Service.PrivateDevices", "yes"},
		{"Service.CapabilityBoundingSet", ""},
		{"Service.RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"},
		{"Service.MemoryDenyWriteExecute", "yes"},
		{"Install.WantedBy", "multi-user.target"},
	} {
		if got, ok := u.last(want.key); !ok || got != want.value {
			t.Errorf("%s = %q (set: %v), want %q", want.key, got, ok, want.value)
		}
	}
	if env, ok := u.last("Service.EnvironmentFile"); !ok || !strings.HasPrefix(strings.TrimPrefix(env, "-"), "/etc/groupcached/") {
		t.Errorf("EnvironmentFile = %q, want the secrets file under /etc/groupcached/", env)
	}
	start, _ := u.last("Service.ExecStart")
	if fields := strings.Fields(start); len(fields) != 3 || fields[1] != "-config" || fields[2] != "/etc/groupcached/config.yaml" {
		t.Errorf("ExecStart = %q, want the binary with -config /etc/groupcached/config.yaml", start)
	}
	budget := stopBudget(t)
	timeout, ok := u.last("Service.TimeoutStopSec")
	if !ok {
		t.Fatal("no TimeoutStopSec: systemd's default (90s) says nothing of the node's budget")
	}
	if d := systemdSeconds(t, timeout); d < budget {
		t.Errorf("TimeoutStopSec %v < the node's stop budget %v: systemd would kill a node that is still draining", d, budget)
	}
}

// TestUnitSystemdAnalyze has systemd check the unit (verify: every line parses, the binary
// exists) and rate its sandbox (security: the exposure must stay at most 2.0 of 10). The unit
// is copied with ExecStart pointing at an executable that exists here: this test's binary.
func TestUnitSystemdAnalyze(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed")
	}
	src, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^ExecStart=\S+`)
	if !re.Match(src) {
		t.Fatal("no ExecStart line")
	}
	dir := t.TempDir()
	copyPath := filepath.Join(dir, unitFile)
	if err := os.WriteFile(copyPath, re.ReplaceAll(src, []byte("ExecStart="+self)), 0o644); err != nil {
		t.Fatal(err)
	}
	// verify exits 0 on lines it ignores; anything it says about the unit is a mistake.
	out, err := exec.Command(analyze, "verify", copyPath).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	// --threshold is on systemd's internal scale of 0 to 100: 20 is an exposure of 2.0.
	out, err = exec.Command(analyze, "security", "--offline=true", "--threshold=20", copyPath).CombinedOutput()
	summary := ""
	if lines := strings.Split(strings.TrimSpace(string(out)), "\n"); len(lines) > 0 {
		summary = lines[len(lines)-1]
	}
	if err != nil {
		t.Errorf("systemd-analyze security: %v: %s", err, summary)
	}
	t.Log(summary)
}

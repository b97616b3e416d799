package policy

import (
	"strings"

	"github.com/moatsec/moat/internal/lazyregexp"
)

// Secret detection for the noSecretsInEnv requirement. An environment entry holds a secret
// when its value is not empty and either
//   - its name, upper-cased, is one of secretNames or ends with one of secretSuffixes
//     (DB_PASSWORD, API_TOKEN, AWS_SECRET_ACCESS_KEY; not DB_PASSWORD_FILE, which names a
//     file), or
//   - its value looks like key material or a well-known credential format: a PEM private
//     key, an AWS access key ID, a GitHub, GitLab or Slack token.
//
// Values are never reported, only names.
var (
	secretNames = []string{
		"PASSWORD", "PASSWD", "SECRET", "TOKEN", "API_KEY", "APIKEY", "PRIVATE_KEY",
		"AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
	}
	secretSuffixes = []string{
		"_PASSWORD", "_PASSWD", "_PASS", "_SECRET", "_SECRET_KEY", "_TOKEN",
		"_API_KEY", "_APIKEY", "_ACCESS_KEY", "_PRIVATE_KEY", "_CREDENTIALS",
	}
	secretValue = lazyregexp.New(`-----BEGIN [A-Z ]*PRIVATE KEY-----|\b(AKIA|ASIA)[0-9A-Z]{16}\b|\bgh[pousr]_[A-Za-z0-9]{36}\b|\bgithub_pat_[A-Za-z0-9_]{22,}|\bglpat-[A-Za-z0-9_-]{20}\b|\bxox[baprs]-[A-Za-z0-9-]{10,}`)
)

// SecretsInEnv returns the names of the "NAME=value" entries of env that hold a secret,
// by the rule above.
func SecretsInEnv(env []string) []string {
	var names []string
	for _, e := range env {
		name, value, _ := strings.Cut(e, "=")
		if value == "" {
			continue
		}
		if secretName(strings.ToUpper(name)) || secretValue().MatchString(value) {
			names = append(names, name)
		}
	}
	return names
}

func secretName(n string) bool {
	for _, s := range secretNames {
		if n == s {
			return true
		}
	}
	for _, s := range secretSuffixes {
		if strings.HasSuffix(n, s) {
			return true
		}
	}
	return false
}

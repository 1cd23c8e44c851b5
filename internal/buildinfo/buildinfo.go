// Package buildinfo carries the version stamped into every binary at link time.
package buildinfo

import "runtime/debug"

// Version is set with -ldflags "-X github.com/pganalytics/pganalytics/internal/buildinfo.Version=…".
var Version = "dev"

// String returns the version, falling back to the VCS revision when built without ldflags.
func String() string {
	if Version != "dev" {
		return Version
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "dev-" + s.Value[:12]
			}
		}
	}
	return Version
}

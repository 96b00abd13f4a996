//go:build tools

// Package tools pins the CoreDNS command built by build.sh so that `go mod tidy` keeps its dependencies.
package tools

import _ "github.com/coredns/coredns"

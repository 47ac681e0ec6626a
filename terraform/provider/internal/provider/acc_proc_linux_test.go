//go:build linux

package provider

import (
	"os/exec"
	"syscall"
)

// setChildAttrs makes the kernel stop the server if the test binary dies without cleaning up.
func setChildAttrs(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}

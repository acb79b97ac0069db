//go:build !linux

package main

import "os/exec"

func setChildAttrs(*exec.Cmd)                      {}
func selfCPUSeconds() (float64, bool)              { return 0, false }
func procRSS(int) uint64                           { return 0 }
func machineCPU() (busy, total uint64, ok bool)    { return 0, 0, false }
func machineInfo() (model string, memTotal uint64) { return "", 0 }

"""`payrisk demo`: simulated customers and renewals, recovered by the platform, beside two baselines."""

from payrisk.demo.command import cmd_demo

__all__ = ["cmd_demo"]

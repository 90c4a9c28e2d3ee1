"""VBoxManage's error output: `VBoxManage: error: ...` lines on stderr, exit status 1
(failure) or 2 (syntax error)."""

# COM result codes VBoxManage prints in its "Details:" line.
CODES = {
    "VBOX_E_OBJECT_NOT_FOUND": "0x80bb0001",
    "VBOX_E_INVALID_VM_STATE": "0x80bb0002",
    "VBOX_E_VM_ERROR": "0x80bb0003",
    "VBOX_E_FILE_ERROR": "0x80bb0004",
    "VBOX_E_IPRT_ERROR": "0x80bb0005",
    "VBOX_E_INVALID_OBJECT_STATE": "0x80bb0007",
    "NS_ERROR_INVALID_ARG": "0x80070057",
    "NS_ERROR_FAILURE": "0x80004005",
    "E_ACCESSDENIED": "0x80070005",
}


class VBoxError(Exception):
    """A failure: `lines` are printed as `VBoxManage: error: LINE`, then exit `status`."""

    def __init__(self, lines, status=1, stdout=""):
        super().__init__(lines[0] if lines else "error")
        self.lines = list(lines)
        self.status = status
        self.stdout = stdout


def com_error(message, code, component, interface, context, line=0, file="VBoxManageMisc.cpp"):
    """The three-line form of a failed COM call."""
    return VBoxError(
        [
            message,
            f"Details: code {code} ({CODES.get(code, '0x80004005')}), component {component}, "
            f"interface {interface}, callee nsISupports",
            f'Context: "{context}" at line {line or 200} of file {file}',
        ]
    )


def not_found(name):
    return com_error(
        f"Could not find a registered machine named '{name}'",
        "VBOX_E_OBJECT_NOT_FOUND",
        "VirtualBoxWrap",
        "IVirtualBox",
        "FindMachine(Bstr(a->argv[0]).raw(), machine.asOutParam())",
        2719,
        "VBoxManageInfo.cpp",
    )


def locked(name, context="LockMachine(a->session, LockType_Write)", file="VBoxManageModifyVM.cpp"):
    return com_error(
        f"The machine '{name}' is already locked for a session (or being unlocked)",
        "VBOX_E_INVALID_OBJECT_STATE",
        "MachineWrap",
        "IMachine",
        context,
        531,
        file,
    )


def syntax(message, usage=""):
    """Exit status 2 with the usage text on stdout, as VBoxManage does."""
    return VBoxError([message], status=2, stdout=usage)

"""FAKE VBoxManage (test stand-in for VirtualBox's command line). Not VirtualBox."""

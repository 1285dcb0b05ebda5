"""Polaris (북극성): rehearse a big decision against critic personas."""

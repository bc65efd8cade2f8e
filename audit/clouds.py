"""The one table of national-cloud endpoints. No other module spells a Microsoft URL."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Cloud:
    name: str
    authority_host: str  # where msal gets tokens
    graph_endpoint: str  # Graph root, without version
    usage_reports: bool  # whether /reports/getMailboxUsageDetail is offered


CLOUDS: dict[str, Cloud] = {
    "global": Cloud("global", "https://login.microsoftonline.com", "https://graph.microsoft.com", True),
    "usgov": Cloud("usgov", "https://login.microsoftonline.us", "https://graph.microsoft.us", False),
    "usgov-dod": Cloud("usgov-dod", "https://login.microsoftonline.us", "https://dod-graph.microsoft.us", False),
    "china": Cloud("china", "https://login.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn", False),
}

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"

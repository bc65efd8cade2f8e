"""Fixed identifiers the simulator serves: licence SKUs and service plans, Graph permission ids.

The GUIDs are Microsoft's published ones (the licensing service-plan reference and the Graph
permission reference). Each SKU lists a subset of its real service plans: enough for audits to tell
mailbox plans from the rest.
"""

from __future__ import annotations

from typing import NamedTuple

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
MICROSOFT_TENANT_ID = "f8cdef31-a31e-4b4a-93e4-5f571e91255a"  # owner of Microsoft's first-party apps


class Plan(NamedTuple):
    name: str
    id: str
    service: str  # the assignedPlans `service` value


EXCHANGE_S_STANDARD = Plan("EXCHANGE_S_STANDARD", "9aaf7827-d63c-4b61-89c3-182f06f82e5c", "exchange")
EXCHANGE_S_ENTERPRISE = Plan("EXCHANGE_S_ENTERPRISE", "efb87545-963c-4e0d-99df-69c6916d9eb0", "exchange")
EXCHANGE_S_DESKLESS = Plan("EXCHANGE_S_DESKLESS", "4a82b400-a79f-41a4-b4e2-e94f5787b113", "exchange")
EXCHANGE_S_FOUNDATION = Plan("EXCHANGE_S_FOUNDATION", "113feb6c-3fe4-4440-bddc-54d774bf0318", "exchange")
SHAREPOINTENTERPRISE = Plan("SHAREPOINTENTERPRISE", "5dbe027f-2339-4123-9542-606e4d348a72", "SharePoint")
TEAMS1 = Plan("TEAMS1", "57ff2da0-773e-42df-b2af-ffb7a2317929", "TeamspaceAPI")
MCOSTANDARD = Plan("MCOSTANDARD", "0feaeb32-d00e-4d66-bd5a-43b5b83db82c", "MicrosoftCommunicationsOnline")
OFFICESUBSCRIPTION = Plan("OFFICESUBSCRIPTION", "43de0ff5-c92c-492b-9116-175376d08c38", "MicrosoftOffice")
YAMMER_ENTERPRISE = Plan("YAMMER_ENTERPRISE", "7547a3fe-08ee-4ccb-b430-5077c5041653", "YammerEnterprise")
INTUNE_A = Plan("INTUNE_A", "c1ec4a95-1f05-45b3-a911-aa3fa01094f5", "SCO")
AAD_PREMIUM = Plan("AAD_PREMIUM", "41781fb2-bc02-4b7c-bd55-b576c07bb09d", "AADPremiumService")
BI_AZURE_P2 = Plan("BI_AZURE_P2", "70d33638-9c74-4d01-bfd3-562de28bd4ba", "PowerBI")
MCOMEETADV = Plan("MCOMEETADV", "3e26ee1f-8a5f-4d52-aee2-b81ce45c8f40", "MicrosoftCommunicationsOnline")
MCOEV = Plan("MCOEV", "4828c8ec-dc2e-4779-b502-87ac9ce28ab7", "MicrosoftCommunicationsOnline")

MAILBOX_PLANS = frozenset({EXCHANGE_S_STANDARD.id, EXCHANGE_S_ENTERPRISE.id, EXCHANGE_S_DESKLESS.id})


class Sku(NamedTuple):
    part_number: str
    id: str
    plans: tuple[Plan, ...]

    @property
    def exchange_plan(self) -> Plan | None:
        return next((p for p in self.plans if p.id in MAILBOX_PLANS), None)


_OFFICE = (SHAREPOINTENTERPRISE, TEAMS1, MCOSTANDARD, OFFICESUBSCRIPTION)
ENTERPRISEPACK = Sku(
    "ENTERPRISEPACK",
    "6fd2c87f-b296-42f0-b197-1e91e994b900",
    (EXCHANGE_S_ENTERPRISE, *_OFFICE, YAMMER_ENTERPRISE),
)
SPE_E3 = Sku("SPE_E3", "05e9a617-0261-4cee-bb44-138d3ef5d965", (EXCHANGE_S_ENTERPRISE, *_OFFICE, INTUNE_A, AAD_PREMIUM))
SPE_E5 = Sku(
    "SPE_E5",
    "06ebc4ee-1bb5-47dd-8120-11324bc54e06",
    (EXCHANGE_S_ENTERPRISE, *_OFFICE, INTUNE_A, AAD_PREMIUM, BI_AZURE_P2),
)
EXCHANGESTANDARD = Sku("EXCHANGESTANDARD", "4b9405b0-7788-4568-add1-99614e613b69", (EXCHANGE_S_STANDARD,))
DESKLESSPACK = Sku("DESKLESSPACK", "4b585984-651b-448a-9e53-3b10f069cf7f", (EXCHANGE_S_DESKLESS, TEAMS1))
POWER_BI_PRO = Sku("POWER_BI_PRO", "f8a1db68-be16-40ed-86d5-cb42ce701560", (BI_AZURE_P2, EXCHANGE_S_FOUNDATION))
AAD_PREMIUM_SKU = Sku("AAD_PREMIUM", "078d2b04-f1bd-4111-bbd4-b4b1b354cef4", (AAD_PREMIUM, EXCHANGE_S_FOUNDATION))

# Teams Rooms resource accounts: enabled, licensed, and no Exchange Online plan (the room mailbox needs none).
TEAMS_ROOMS_PRO = Sku(
    "Microsoft_Teams_Rooms_Pro",
    "4cde982a-ede4-4409-9ae6-b003453c8ea6",
    (TEAMS1, MCOSTANDARD, MCOMEETADV, MCOEV, INTUNE_A, AAD_PREMIUM),
)
TEAMS_ROOMS_BASIC = Sku("Microsoft_Teams_Rooms_Basic", "6af4b3d6-14bb-4a2a-960c-6c902aad34f3", (TEAMS1, MCOMEETADV))

SKUS = (
    ENTERPRISEPACK,
    SPE_E3,
    SPE_E5,
    EXCHANGESTANDARD,
    DESKLESSPACK,
    POWER_BI_PRO,
    AAD_PREMIUM_SKU,
    TEAMS_ROOMS_PRO,  # last: a tenant without Teams Rooms draws the same random numbers as before
    TEAMS_ROOMS_BASIC,
)

# Microsoft Graph application permissions (appRole ids of the Microsoft Graph service principal).
GRAPH_APP_ROLES: dict[str, str] = {
    "Mail.ReadWrite": "e2a3a72e-5f79-4c64-b1b1-878b674786c9",
    "Mail.Read": "810c84a8-4a9e-49e6-bf7d-12d183f40d01",
    "Mail.ReadBasic.All": "693c5e45-0940-467d-9b8a-1022fb9d42ef",
    "Mail.Send": "b633e1c5-b582-4048-a93e-9f11b44c7e96",
    "MailboxSettings.Read": "40f97065-369a-49f4-947c-6a255697ae91",
    "MailboxSettings.ReadWrite": "6931bccd-447a-43d1-b442-00a195474933",
    "Organization.Read.All": "498476ce-e0fe-48b0-b801-37ba7e2685c6",
    "User.Read.All": "df021288-bdef-4463-88db-98f22de89214",
    "Directory.Read.All": "7ab1d382-f21e-4acd-a863-ba3e13f7da61",
    "Application.Read.All": "9a5d68dd-52b0-4cc2-bd40-abcf44ac3a30",
    "Domain.Read.All": "dbb9058a-0e50-45d7-ae91-66909b5d4664",
    "AuditLog.Read.All": "b0afded3-3588-46d8-8b3d-9842eff778da",
    "Reports.Read.All": "230c1aed-a721-4c5d-9cb4-a90514e508ef",
    "GroupMember.Read.All": "98830695-27a2-44f7-8c18-0c3ebc9698f6",
    "AdministrativeUnit.Read.All": "134fd756-38ce-4afd-ba33-e9623dbe66c2",
    "Group.Read.All": "5b567255-7703-4780-807c-7be8301ae99b",
}

AUDIT_ROLES = (
    "User.Read.All",
    "Organization.Read.All",
    "Application.Read.All",
    "MailboxSettings.Read",
    "Reports.Read.All",
    "GroupMember.Read.All",
    "Mail.Send",
)

FIRST_NAMES = tuple(
    (
        "Adele Alex Allan Amir Ana Ben Bianca Carlos Chen Chloe Dana Diego Elena Emil Fatima Femi Grace "
        "Hana Henrik Ines Isaiah Jana Joni Kai Keiko Lars Lee Lidia Lynne Mateo Megan Miriam Nestor Nia "
        "Omar Patti Pradeep Priya Raul Rosa Sakura Sam Sofia Tariq Uma Vera Wei Yara Zoe Zoltan"
    ).split()
)
LAST_NAMES = tuple(
    (
        "Adams Alvarez Baker Bauer Brown Chandra Costa Dubois Eriksen Fernandez Fischer Garcia Gupta "
        "Haddad Hansen Ito Jensen Johnson Kaur Kim Kowalski Larsen Lopez Martin Meyer Moreau Nakamura "
        "Nguyen Novak Okafor Olsen Patel Petrov Quinn Rossi Sato Schmidt Silva Singh Smith Suzuki Tanaka "
        "Torres Vance Wagner Walsh Weber Wilson Yilmaz Zhang"
    ).split()
)
JOB_TITLES = tuple(
    (
        "Accountant, Analyst, Buyer, Consultant, Designer, Developer, Engineer, Marketing Manager, "
        "Nurse, Paralegal, Product Manager, Recruiter, Sales Associate, Support Engineer, Technician"
    ).split(", ")
)
OFFICES = ("Amsterdam", "Austin", "Berlin", "Dublin", "Lisbon", "Osaka", "Seattle", "Singapore", "Toronto")
SHARED_NAMES = tuple(
    (
        "Accounts Payable, Helpdesk, Info, Invoices, Marketing, Payroll, Press, Reception, Recruiting, "
        "Sales, Security, Support"
    ).split(", ")
)
ROOM_NAMES = ("Boardroom", "Conf Room Adams", "Conf Room Baker", "Conf Room Crane", "Huddle 1", "Huddle 2")
EQUIPMENT_NAMES = ("Projector 1", "Pool Car 1", "Pool Car 2", "Camera Kit")
GUEST_DOMAINS = ("gmail.com", "outlook.com", "partner-corp.com", "supplier.io")

PLANS = (
    EXCHANGE_S_STANDARD,
    EXCHANGE_S_ENTERPRISE,
    EXCHANGE_S_DESKLESS,
    EXCHANGE_S_FOUNDATION,
    SHAREPOINTENTERPRISE,
    TEAMS1,
    MCOSTANDARD,
    OFFICESUBSCRIPTION,
    YAMMER_ENTERPRISE,
    INTUNE_A,
    AAD_PREMIUM,
    BI_AZURE_P2,
    MCOMEETADV,
    MCOEV,
)
SERVICE_OF_PLAN = {p.name: p.service for p in PLANS}

DEPARTMENTS = ("Sales", "Finance", "Engineering", "Marketing", "Operations", "Support", "Legal")
# (city, state, country) as Entra holds them: free text, the country by name.
LOCATIONS = (
    ("Seattle", "WA", "United States"),
    ("Chicago", "IL", "United States"),
    ("London", None, "United Kingdom"),
    ("Munich", "Bavaria", "Germany"),
    ("Toronto", "ON", "Canada"),
)

"""Creates an organisation and lists organisations.

    python examples/example.py --socket orgd.sock "Riverside GP"
    python examples/example.py --address 127.0.0.1:7420 --token TOKEN "Riverside GP"
"""
import argparse
import sys

from orgd_client import Client, OrgdError


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("--socket")
    parser.add_argument("--address", help="HOST:PORT")
    parser.add_argument("--token")
    arguments = parser.parse_args()
    if arguments.address:
        host, port = arguments.address.rsplit(":", 1)
        client = Client(address=(host, int(port)), token=arguments.token, timeout=5)
    else:
        client = Client(unix_path=arguments.socket or "orgd.sock", token=arguments.token, timeout=5)
    try:
        with client:
            created = client.organizations.create_organization(name=arguments.name, type="ORGANIZATION_TYPE_GP_PRACTICE")
            print(f"created {created.id} \"{created.name}\"")
            for organization in client.organizations.list_organizations(page_size=100).organizations:
                print(f"{organization.id}  {organization.name}")
    except OrgdError as error:
        print(f"orgd: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

import factory

from pipeline_project.accounts.tests.factories import UserFactory
from pipeline_project.studio.models import Asset, Membership, Project, Sequence, Shot


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    code = factory.Sequence(lambda n: f"proj{n}")
    name = factory.LazyAttribute(lambda p: f"Project {p.code}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    project = factory.SubFactory(ProjectFactory)
    role = Membership.Role.CONTRIBUTOR


class SequenceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Sequence

    project = factory.SubFactory(ProjectFactory)
    code = factory.Sequence(lambda n: f"sq{n:03d}")


class ShotFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Shot

    sequence = factory.SubFactory(SequenceFactory)
    project = factory.SelfAttribute("sequence.project")
    code = factory.Sequence(lambda n: f"sh{n:04d}")


class AssetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Asset

    project = factory.SubFactory(ProjectFactory)
    code = factory.Sequence(lambda n: f"Asset{n}")
    asset_type = Asset.Type.PROP

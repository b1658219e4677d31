from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.response import Response

from . import services
from .models import ApiToken


class MeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    display_name = serializers.CharField(source="get_display_name")
    email = serializers.EmailField()
    roles = serializers.SerializerMethodField()

    def get_roles(self, user) -> list[str]:
        return sorted(user.get_role_names())


class TokenSerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiToken
        fields = ["token_key", "name", "created", "expiry", "last_used"]


class TokenCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    lifetime = serializers.ChoiceField(choices=list(services.TOKEN_LIFETIMES), default="365")


class TokenCreatedSerializer(TokenSerializer):
    token = serializers.CharField(help_text="The secret. Shown once; store it now.")

    class Meta(TokenSerializer.Meta):
        fields = [*TokenSerializer.Meta.fields, "token"]


@extend_schema(responses=MeSerializer, tags=["accounts"])
@api_view(["GET"])
def me(request):
    """The calling user and their studio roles."""
    return Response(MeSerializer(request.user).data)


@extend_schema(
    methods=["GET"],
    responses=TokenSerializer(many=True),
    tags=["accounts"],
    description="Your API tokens (the secrets themselves are never shown again).",
)
@extend_schema(
    methods=["POST"],
    request=TokenCreateSerializer,
    responses={201: TokenCreatedSerializer},
    tags=["accounts"],
    description="Create a token. The response holds the secret, once.",
)
@api_view(["GET", "POST"])
def tokens(request):
    if request.method == "GET":
        return Response(TokenSerializer(ApiToken.objects.filter(user=request.user), many=True).data)
    data = TokenCreateSerializer(data=request.data)
    data.is_valid(raise_exception=True)
    token, secret = services.token_create(user=request.user, **data.validated_data)
    payload = TokenSerializer(token).data | {"token": secret}
    return Response(payload, status=status.HTTP_201_CREATED)


@extend_schema(
    request=None, responses={204: OpenApiResponse(description="Revoked")}, tags=["accounts"]
)
@api_view(["DELETE"])
def token_revoke(request, token_key):
    """Revoke one of your tokens; calls made with it then get 401."""
    services.token_revoke(user=request.user, token_key=token_key)
    return Response(status=status.HTTP_204_NO_CONTENT)
